// The seller console's live parts: filled in by the seller console.
