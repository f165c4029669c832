"""See DESIGN: experiments layer of linseq."""
