"""The vision core: detect faces, align them, embed them, recognise them, follow them."""
