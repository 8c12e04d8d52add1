"""``python -m tf_genai`` runs the ``tf-genai`` command line."""

from tf_genai.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
