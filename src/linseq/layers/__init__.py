"""See DESIGN: layers layer of linseq."""
