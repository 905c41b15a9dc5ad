// The flash-sale page's live parts: filled in by the flash-sale page.
