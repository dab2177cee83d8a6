"""Message checks that read a stored message: HTML compatibility (caniemail.com data), links, spam score."""
