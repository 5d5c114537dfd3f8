"""What Python callers and the command line call: map rasters, describe models and rasters."""
