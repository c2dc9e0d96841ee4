"""kroniker: an open toolkit for the digital chronic care package (kronikerpakke) in Danish general practice."""

__version__ = "0.1.0"
