"""Data: the registry of data sets, the generated sets, image folders and file lists, and the feeder that
holds a set on the device."""
