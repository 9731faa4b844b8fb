"""Metrics of generated videos (paper Sec. 4.2): arrives with the evaluation stage; nothing here yet."""
