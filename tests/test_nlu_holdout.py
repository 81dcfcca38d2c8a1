"""NLU on the hold-out set, with the trained model as it serves (FallbackClassifier included:
a message it sends to nlu_fallback counts as misclassified)."""
import asyncio
from pathlib import Path
from typing import Dict, List, Tuple

from sklearn.metrics import f1_score

from tests.conftest import ROOT, nlu_examples

MACRO_F1_FLOOR = 0.90


def classify(model_path: Path, texts: List[str]) -> List[str]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model_path))

    async def parse_all() -> List[str]:
        return [(await agent.parse_message(text))["intent"]["name"] for text in texts]

    return asyncio.run(parse_all())


def test_holdout_macro_f1(model_path: Path) -> None:
    examples: Dict[str, List[str]] = nlu_examples([ROOT / "tests" / "nlu" / "holdout.yml"])
    pairs: List[Tuple[str, str]] = [(intent, text) for intent, texts in examples.items()
                                    for text in texts]
    truth = [intent for intent, _ in pairs]
    predicted = classify(model_path, [text for _, text in pairs])
    labels = sorted(set(truth))
    macro_f1 = f1_score(truth, predicted, labels=labels, average="macro", zero_division=0)
    misses = [f"{text!r}: {want} -> {got}" for (want, text), got in zip(pairs, predicted)
              if want != got]
    print(f"\nhold-out: {len(pairs)} examples, {len(labels)} intents, macro-F1 {macro_f1:.3f}, "
          f"{len(misses)} misclassified")
    for miss in misses:
        print("  ", miss)
    assert macro_f1 >= MACRO_F1_FLOOR, "\n".join(misses)
