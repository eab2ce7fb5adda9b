"""Load phase (placeholder)."""
def run(b, a):
    return {"lines": ["not yet"]}
