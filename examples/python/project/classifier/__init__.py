"""A small image classifier, written the way a user's own training code is: its own Dataset,
DataLoader and model, benchmarked by bench through ``classifier.train:run``."""
