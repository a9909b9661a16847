"""The send path: the tick, batches, channels and transports. `dispatch` is the one module that wires
store → rules → rendering → transport; transports never touch the database."""
