"""Tools that read, check or repair a journal, and the crash simulator."""
