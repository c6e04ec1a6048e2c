"""Image jobs: text to image, image to image, inpaint, Hires. fix, masks and live previews."""
