"""Reviews (买家秀): a customer's rating, words and photos of a received order, moderated by staff."""
