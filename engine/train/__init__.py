"""Train: teach the loaded model a person or a thing from a few photos (DreamBooth LoRA), without disturbing it.

    photos = prepare_photos(folder_or_zip, class_word, resolution)     # engine.train.photos
    result = train_lora(manager, request, control, on_progress)        # engine.train.loop
    result = train_full(manager, request, control, on_progress)        # engine.train.full: weights/NAME.safetensors

The LoRA is trained on a second UNet (and text encoder) that shares every base tensor with the loaded model
(engine.train.shared), so other requests keep seeing the plain model while a training runs.
"""
