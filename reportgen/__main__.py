from .resident import run

run("python -m reportgen")
