"""The publishing loop's host side: what the GPU workflow's scripts call to hand results on and commit them."""
