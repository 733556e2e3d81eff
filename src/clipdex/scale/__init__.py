"""Work at pool scale: embedding whole pools into the interchange layout the LAION tools share."""
