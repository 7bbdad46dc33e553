"""Group buys (拼团): campaigns, groups and their deadlines."""
