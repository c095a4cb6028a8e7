"""The engine: the state, the commit gate every change passes, and the operations on it."""
