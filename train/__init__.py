"""lictrt training side: layers, model zoo, data, loss, trainer and checkpoint I/O (``python -m train``)."""
