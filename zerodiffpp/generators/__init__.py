"""Feature generators: ZeroDiff's SC encoder, DRG and DFG, the f-CLSWGAN baseline, and sampling from them."""
