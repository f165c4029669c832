"""See DESIGN: data layer of linseq."""
