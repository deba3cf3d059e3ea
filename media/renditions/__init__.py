"""A conference's low video rendition, for points whose links cannot carry the full one: made once
per conference by the server (transcoder) while points need it (keeper)."""
