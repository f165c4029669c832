"""See DESIGN: models layer of linseq."""
