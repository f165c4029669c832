"""See DESIGN: bench layer of linseq."""
