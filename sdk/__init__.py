"""streamvideo: a distilled streaming video-diffusion world model you can play, script and drive."""

__version__ = "0.1.0"
