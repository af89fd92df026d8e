"""Analysis: the study's tables read back, and the tables and the recommendation built on them."""
