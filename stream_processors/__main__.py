"""``python -m stream_processors``: run one processor worker (flags override env)."""

from stream_processors.runner import main

main()
