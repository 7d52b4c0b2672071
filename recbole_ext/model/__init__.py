"""Models of recbole_ext, laid out as RecBole lays out its own (``<type>_recommender/<lower>.py``)."""
