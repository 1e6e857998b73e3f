"""How a job that gathers many tables of one kind names its inputs: the rule that lists
them and the script that reads them agree through this one function (imported while
the workflow is parsed, so it imports nothing heavy)."""


def table_key(table: str, experiment: str | None = None, model: str | None = None) -> str:
    """An input's name: what the table is, and whose ("convergence/prompt_pairs",
    "flatness/random_sentences/smollm2", "model//smollm2" has no experiment)."""
    return "/".join((table, experiment or "", model or "")).rstrip("/")
