"""Shipping files with jobs and keeping what they leave: the submitter's side (``manifest``,
``transfer``, ``cli``), the node's (``store``, ``host``) and their messages (``messages``)."""
