"""The pyfuse3 frontend and the mount daemon: kernel requests translated into engine calls."""
