"""Analytics: the events worth counting (a search, a card opened, an order paid...) and the
figures the staff dashboard draws from them and from the orders."""
