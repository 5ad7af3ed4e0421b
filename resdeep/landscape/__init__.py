"""`resdeep landscape`: the loss surface around trained nets (Li et al. 2018)."""
