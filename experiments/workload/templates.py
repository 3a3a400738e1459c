"""LongBench prompt templates, split around the context so the context alone can be truncated."""
from dataclasses import dataclass

CONTEXT_FIELD = "{context}"
INPUT_FIELD = "{input}"


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """``head + context + tail``; ``tail`` may hold ``{input}`` (the query) and carries the instruction."""
    head: str
    tail: str

    @staticmethod
    def from_text(text: str) -> "PromptTemplate":
        """Split a LongBench-style template that contains ``{context}`` exactly once."""
        if text.count(CONTEXT_FIELD) != 1:
            raise ValueError(f"a template needs exactly one {CONTEXT_FIELD}, got {text.count(CONTEXT_FIELD)}")
        head, tail = text.split(CONTEXT_FIELD)
        if INPUT_FIELD in head:
            raise ValueError(f"{INPUT_FIELD} must come after {CONTEXT_FIELD} so the instruction tail stays whole")
        return PromptTemplate(head, tail)

    def wrapped(self, prefix: str, suffix: str) -> "PromptTemplate":
        """The same template inside a chat frame, e.g. ``<|im_start|>user\\n`` ... ``<|im_end|>\\n<|im_start|>assistant\\n``."""
        return PromptTemplate(prefix + self.head, self.tail + suffix)

    def tail_for(self, query: str) -> str:
        return self.tail.replace(INPUT_FIELD, query)

    def render(self, context: str, query: str) -> str:
        return self.head + context + self.tail_for(query)


LONGBENCH_TEMPLATES: dict[str, PromptTemplate] = {
    "gov_report": PromptTemplate.from_text(
        "You are given a report by a government agency. Write a one-page summary of the report.\n\n"
        "Report:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:"),
    "qmsum": PromptTemplate.from_text(
        "You are given a meeting transcript and a query containing a question or instruction. "
        "Answer the query in one or more sentences.\n\nTranscript:\n{context}\n\n"
        "Now, answer the query based on the above meeting transcript in one or more sentences.\n\n"
        "Query: {input}\nAnswer:"),
    "multi_news": PromptTemplate.from_text(
        "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n{context}\n\n"
        "Now, write a one-page summary of all the news.\n\nSummary:"),
    "dureader": PromptTemplate.from_text(
        "请基于给定的文章回答下述问题。\n\n文章：{context}\n\n请基于上述文章回答下面的问题。\n\n问题：{input}\n回答："),
}
