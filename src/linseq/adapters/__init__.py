"""See DESIGN: adapters layer of linseq."""
