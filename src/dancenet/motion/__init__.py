"""The motion model: how VAE latents follow each other (recurrent net + mixture-density head).

``mdn`` holds the distribution maths, ``model`` the network and its save/load, ``train`` the
training loop. Import the submodules you need; this package imports nothing heavy by itself.
"""
