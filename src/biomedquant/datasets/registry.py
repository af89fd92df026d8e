"""The eight benchmark datasets, as data.

Each entry states the facts about one dataset: its task, label set, where each split lives
upstream (path relative to the benchmark repository, SHA-256 where it could be verified), the
reader for that file format, licence and citation. Code never branches on a dataset name; it
looks the facts up here.

Upstream: BIDS-Xu-Lab/Biomedical-NLP-Benchmarks at a pinned commit, served as raw files.
Files whose hash could not be verified when this table was written carry ``sha256=None``; the
downloader records the hash it saw on first download and warns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from biomedquant.common.registry import Registry

UPSTREAM_COMMIT = "e607a812d87df151f310a9dd3677cfc21924f192"
DEFAULT_BASE_URL = (
    f"https://raw.githubusercontent.com/BIDS-Xu-Lab/Biomedical-NLP-Benchmarks/{UPSTREAM_COMMIT}/"
)


@dataclass(frozen=True)
class SourceFile:
    """One split of one dataset: upstream relative path, expected hash, reader name."""

    path: str
    reader: str
    sha256: str | None = None


# NER files list sentences without marking their abstracts: the bootstrap resamples blocks of
# this many consecutive sentences (about one abstract: BC5CDR 9.6 sentences per abstract, NCBI
# 9.4), so that a name missed throughout an abstract counts once, not once per sentence.
NER_SENTENCE_BLOCK = 10


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    task: str  # key of biomedquant.tasks.TASKS
    labels: tuple[str, ...]  # closed label set (NER: the entity type)
    files: dict[str, SourceFile]
    licence: str
    citation: str
    test_size: int  # official test size (benchmark paper, Table 5)
    # Characters of input text (labels left out) in the split few-shot examples and in-domain
    # calibration draw from, measured on the pinned upstream files; where that split could not
    # be measured, a smaller split's count stands as a lower bound (None: not measured). The
    # study check counts a calibration pool with it before the pool is downloaded.
    pool_chars_at_least: int | None = None
    fewshot_split: str = "train"
    label_help: dict[str, str] = field(default_factory=dict)  # shown to the model
    # Other wordings that name a label wherever they stand, as a careful annotator reads them:
    # the label's definition, the benchmark's and the source paper's own names for it, common
    # shortenings, spellings and plurals. Plain phrases: case, spacing, "-"/"_"/":" between
    # words and "&" for "and" vary by themselves (see biomedquant.tasks.text.word_pattern).
    label_synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Bare words that name a label only when they are the answer (the output or its marked
    # answer opens with one and names no other): inside prose they describe, not answer
    # ("cardiomyocyte activation by the chemical" is not CPR:3).
    label_bare_words: dict[str, tuple[str, ...]] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    # The bootstrap's resampling unit when items are not independent: a regular expression
    # matched at the start of an item id whose first group names the item's cluster (all
    # entity pairs of one document or abstract), or, with cluster_block, its position in the
    # source file, cut into blocks of that many consecutive items (the sentences of an NER
    # file, whose abstracts the file does not mark). None: every item is its own unit.
    cluster_pattern: str | None = None
    cluster_block: int | None = None
    cluster_unit: str = "item"  # what a cluster is, for tables and documentation

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.files)

    def source(self, split: str) -> SourceFile:
        """The source file of ``split``; an unknown split is an error naming the valid ones."""
        if split not in self.files:
            raise KeyError(
                f"dataset {self.name!r} has no split {split!r}; it has {list(self.files)}"
            )
        return self.files[split]


def _bench(folder: str, split: str) -> str:
    return f"benchmarks/{folder}/datasets/full_set/{split}.tsv"


def _files(folder: str, reader: str, hashes: dict[str, str | None]) -> dict[str, SourceFile]:
    return {split: SourceFile(_bench(folder, split), reader, h) for split, h in hashes.items()}


HOC_LABELS = (
    "sustaining proliferative signaling",
    "evading growth suppressors",
    "resisting cell death",
    "enabling replicative immortality",
    "inducing angiogenesis",
    "activating invasion and metastasis",
    "genomic instability and mutation",
    "tumor promoting inflammation",
    "cellular energetics",
    "avoiding immune destruction",
)
LITCOVID_LABELS = (
    "Treatment",
    "Prevention",
    "Diagnosis",
    "Mechanism",
    "Case Report",
    "Transmission",
    "Epidemic Forecasting",
)

# What each label is called besides its name (the field ``label_synonyms`` above). Facts, not
# code: every wording is one a reader of the source paper or the benchmark meets.

# The hallmarks in Hanahan & Weinberg's own wordings (Cell 2000, "The hallmarks of cancer";
# Cell 2011, "Hallmarks of cancer: the next generation"), British spellings and the shortenings
# models write.
HOC_SYNONYMS: dict[str, tuple[str, ...]] = {
    "sustaining proliferative signaling": (
        "sustaining proliferative signalling",
        "sustained proliferative signaling",
        "sustained proliferative signalling",
        "proliferative signaling",
        "proliferative signalling",
        "self-sufficiency in growth signals",
    ),
    "evading growth suppressors": (
        "evading growth suppression",
        "evasion of growth suppressors",
        "insensitivity to antigrowth signals",
        "insensitivity to anti-growth signals",
    ),
    "resisting cell death": (
        "resistance to cell death",
        "evading apoptosis",
        "evasion of apoptosis",
        "resisting apoptosis",
        "resistance to apoptosis",
    ),
    "enabling replicative immortality": (
        "replicative immortality",
        "limitless replicative potential",
    ),
    "inducing angiogenesis": ("sustained angiogenesis", "angiogenesis"),
    "activating invasion and metastasis": (
        "tissue invasion and metastasis",
        "invasion and metastasis",
    ),
    "genomic instability and mutation": (
        "genome instability and mutation",
        "genomic instability",
        "genome instability",
    ),
    "tumor promoting inflammation": (
        "tumour promoting inflammation",
        "tumor-promoting inflammation",
        "tumour-promoting inflammation",
    ),
    "cellular energetics": (
        "deregulating cellular energetics",
        "reprogramming energy metabolism",
        "reprogramming of energy metabolism",
    ),
    "avoiding immune destruction": (
        "evading immune destruction",
        "immune evasion",
        "evasion of immune destruction",
        "immune escape",
    ),
}
# LitCovid's topics in the plural and the other forms of the topic names (Chen et al. 2021
# define them: Case Report "descriptions of specific patient cases", Epidemic Forecasting
# "estimation on the trend of COVID-19 spread").
LITCOVID_SYNONYMS: dict[str, tuple[str, ...]] = {
    "Treatment": ("treatments",),
    "Prevention": ("preventions",),
    "Diagnosis": ("diagnoses",),
    "Mechanism": ("mechanisms",),
    "Case Report": ("case reports", "case study", "case studies"),
    "Transmission": ("transmissions",),
    "Epidemic Forecasting": (
        "epidemic forecast",
        "epidemic forecasts",
        "forecasting",
        "forecasts",
        "forecast",
    ),
}
# The statements of "no relation" the negative class of either relation dataset is named by.
NO_RELATION_WORDINGS = ("none", "false", "negative", "unrelated", "not related")
# ChemProt's relation groups by the relation names of its annotation guidelines (Krallinger et
# al. 2017: CPR:3 upregulator/activator, CPR:4 downregulator/inhibitor, CPR:5 agonist,
# CPR:6 antagonist, CPR:9 substrate/product of) and the verbs of the prompt's definitions.
CHEMPROT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "CPR:3": (
        "upregulates",
        "up-regulates",
        "activates",
        "upregulator",
        "activator",
        "indirect upregulator",
    ),
    "CPR:4": (
        "downregulates",
        "down-regulates",
        "inhibits",
        "downregulator",
        "inhibitor",
        "indirect downregulator",
    ),
    "CPR:5": ("agonist", "agonist-activator", "agonist-inhibitor"),
    "CPR:6": ("antagonist",),
    "CPR:9": ("substrate", "is a product of", "product of the gene", "is metabolized by"),
    "false": NO_RELATION_WORDINGS,
}
CHEMPROT_BARE_WORDS: dict[str, tuple[str, ...]] = {
    "CPR:3": ("activators", "activation", "upregulation", "up-regulation", "upregulated"),
    "CPR:4": ("inhibitors", "inhibition", "downregulation", "down-regulation", "downregulated"),
    "CPR:5": ("agonists", "agonism"),
    "CPR:6": ("antagonists", "antagonism"),
    "CPR:9": ("substrates", "product", "products", "metabolite", "metabolites"),
}
# DDI's types in the words of the DDI corpus's definitions (Herrero-Zazo et al. 2013:
# mechanism = a pharmacokinetic interaction, effect = a pharmacodynamic one or an effect,
# advise = a recommendation or advice, int = an interaction stated with no further
# information) and of this project's prompt (``label_help``).
DDI_SYNONYMS: dict[str, tuple[str, ...]] = {
    "DDI-effect": (
        "pharmacodynamic interaction",
        "pharmacodynamic effect",
        "pharmacodynamic",
    ),
    "DDI-mechanism": (
        "pharmacokinetic interaction",
        "pharmacokinetic mechanism",
        "pharmacokinetic",
    ),
    "DDI-advise": ("a recommendation", "recommendation about taking both"),
    "DDI-int": (
        "interaction without further detail",
        "interaction without further information",
        "unspecified interaction",
    ),
    "DDI-false": (
        *NO_RELATION_WORDINGS,
        "do not interact",
        "does not interact",
        "don't interact",
        "doesn't interact",
    ),
}
DDI_BARE_WORDS: dict[str, tuple[str, ...]] = {
    "DDI-effect": ("effect", "effects"),
    "DDI-mechanism": ("mechanism", "mechanisms"),
    "DDI-advise": ("advise", "advice"),
    "DDI-int": ("int",),
}
# The entity type of each NER dataset and the other words a model names it by (in a list
# heading "Drugs: ...", a type suffix "haloperidol (chemical)", an inline tag
# "<drug>...</drug>").
CHEMICAL_WORDS = ("chemicals", "chemical entity", "chemical entities", "drug", "drugs")
CHEMICAL_WORDS += ("compound", "compounds")
DISEASE_WORDS = ("diseases", "disorder", "disorders", "condition", "conditions")
DISEASE_WORDS += ("disease entity", "disease entities")


DATASETS: Registry[DatasetSpec] = Registry(
    "dataset",
    (
        (spec.name, spec)
        for spec in (
            DatasetSpec(
                name="bc5cdr_chem",
                title="BC5CDR-chemical",
                task="ner",
                labels=("chemical",),
                label_synonyms={"chemical": CHEMICAL_WORDS},
                files=_files(
                    "[NER]BC5CDR_Chemical",
                    "conll",
                    {
                        "test": "4da9183ad83d0921eaca25ba011871308b9476c14f9b10fba7bfee55a9750649",
                        "train": "1272b747a1d64ccfaa21061c515c26e9e1f134e3afd3c2ef14d8cd0697e9a234",
                        "dev": "17a6bc43d459c9dedaedad7990eb44ce0c4789a3a9813104aef9d2f3192c8fd0",
                    },
                ),
                licence="Public Domain Mark",
                citation="Li et al. 2016, BioCreative V CDR task corpus, Database baw068",
                test_size=4797,
                pool_chars_at_least=673_753,
                # s<position>: 4,797 sentences of 500 abstracts, resampled in blocks of 10
                cluster_pattern=r"^s(\d+)$",
                cluster_block=NER_SENTENCE_BLOCK,
                cluster_unit="block of 10 sentences",
            ),
            DatasetSpec(
                name="ncbi_disease",
                title="NCBI-disease",
                task="ner",
                labels=("disease",),
                label_synonyms={"disease": DISEASE_WORDS},
                files=_files(
                    "[NER]NCBI_Disease",
                    "conll",
                    {
                        "test": "ca56aff802f8c8849793e806914636f7c9d8bf03bbd88c66402266289beb3995",
                        "train": "26df55fb9da14f52834c7c7238ec30af271aa4e3bbe2256ef96cab2c0a7e159b",
                        "dev": "a91324724fa0783ef3096f060580e6b4e8dfdf83664d48e77951a45b693c0eaa",
                    },
                ),
                licence="CC0-1.0",
                citation="Dogan et al. 2014, NCBI disease corpus, J Biomed Inform 47:1-10",
                test_size=940,
                pool_chars_at_least=765_203,
                # 940 sentences of 100 abstracts, resampled in blocks of 10
                cluster_pattern=r"^s(\d+)$",
                cluster_block=NER_SENTENCE_BLOCK,
                cluster_unit="block of 10 sentences",
            ),
            DatasetSpec(
                name="chemprot",
                title="ChemProt",
                task="re",
                labels=("CPR:3", "CPR:4", "CPR:5", "CPR:6", "CPR:9", "false"),
                files=_files(
                    "[RE]Chemprot",
                    "re_tsv",
                    {
                        "test": None,
                        "train": None,
                        "dev": "38a1736c183f4ea71b809b28b8e4e66c406b125f3a7741292c20e24efeb43b3b",
                    },
                ),
                licence="Public Domain Mark",
                citation="Krallinger et al. 2017, Overview of the BioCreative VI ChemProt track",
                test_size=16943,
                pool_chars_at_least=3_013_060,  # dev split's count (train not measured)
                label_help={
                    "CPR:3": "the chemical upregulates or activates the gene/protein",
                    "CPR:4": "the chemical downregulates or inhibits the gene/protein",
                    "CPR:5": "the chemical is an agonist of the gene/protein",
                    "CPR:6": "the chemical is an antagonist of the gene/protein",
                    "CPR:9": "the chemical is a substrate or product of the gene/protein",
                    "false": "none of the relations above",
                },
                label_synonyms=CHEMPROT_SYNONYMS,
                label_bare_words=CHEMPROT_BARE_WORDS,
                extra={"entity_markers": "@CHEMICAL$ and @GENE$"},
                # ids are <PMID>.<entity>.<entity>: pairs of one abstract resample together
                cluster_pattern=r"^(\d+)\.",
                cluster_unit="abstract",
            ),
            DatasetSpec(
                name="ddi",
                title="DDI2013",
                task="re",
                labels=("DDI-effect", "DDI-mechanism", "DDI-advise", "DDI-int", "DDI-false"),
                files=_files(
                    "[RE]DDI",
                    "re_tsv",
                    {
                        "test": "9a67da1c6bb9c8a4109356f1275ceaae306a142d26beedc42ef636d07847c27b",
                        "train": None,
                        "dev": "350d725f5f6e001a5d40471828a5b7e0a177e4d0f4cbb08b37f9869aa347f2b4",
                    },
                ),
                licence="CC-BY-NC-4.0",
                citation="Herrero-Zazo et al. 2013, The DDI corpus, J Biomed Inform 46:914-920",
                test_size=5761,
                pool_chars_at_least=2_581_369,  # dev split's count (train not measured)
                label_help={
                    "DDI-effect": "the sentence states an effect or pharmacodynamic interaction",
                    "DDI-mechanism": "the sentence states a pharmacokinetic mechanism",
                    "DDI-advise": "the sentence gives advice or a recommendation about taking both",
                    "DDI-int": "the sentence states an interaction without further detail",
                    "DDI-false": "no interaction between the two drugs is stated",
                },
                label_synonyms=DDI_SYNONYMS,
                label_bare_words=DDI_BARE_WORDS,
                extra={"entity_markers": "@DRUG$ (twice)"},
                # ids are DDI-<source>.d<doc>.s<sentence>.p<pair>: the pairs of one document
                # together (a model that misreads a drug label misreads its every sentence)
                cluster_pattern=r"^(.+\.d\d+)\.s\d+\.p\d+",
                cluster_unit="document",
            ),
            DatasetSpec(
                name="hoc",
                title="HoC",
                task="mlc",
                labels=HOC_LABELS,
                label_synonyms=HOC_SYNONYMS,
                files=_files(
                    "[MLC]Hoc",
                    "mlc_tsv",
                    {
                        "test": "21af492a3572e6529cbae3369d9dbb90abd94e23a90c2307b531311fa8c632ea",
                        "train": "c279c936568681355c59442142e2a1608887da3457d1695ab5b4b649308b96f4",
                        "dev": "a9dd58334fc12a32c2cc2f74b59d6979b92f61248eebdc8ca3aa39fc606034be",
                    },
                ),
                licence="GPL-3.0",
                citation="Baker et al. 2016, Automatic semantic classification of scientific "
                "literature according to the hallmarks of cancer, Bioinformatics 32:432-440",
                test_size=315,
                pool_chars_at_least=1_699_540,
            ),
            DatasetSpec(
                name="litcovid",
                title="LitCovid",
                task="mlc",
                labels=LITCOVID_LABELS,
                label_synonyms=LITCOVID_SYNONYMS,
                files=_files(
                    "[MLC]LitCovid",
                    "mlc_tsv",
                    {
                        "test": "c6377364bcb67ce0907903a6b8ebae6fed6b912d76ffca589afd418403fa95b5",
                        "train": None,
                        "dev": None,
                    },
                ),
                licence="unknown",
                citation="Chen et al. 2021, LitCovid: an open database of COVID-19 literature, "
                "Nucleic Acids Res 49:D1534-D1540",
                test_size=2500,
            ),
            DatasetSpec(
                name="medqa",
                title="MedQA",
                task="qa",
                labels=("A", "B", "C", "D", "E"),
                files=_files(
                    "[QA]MedQA",
                    "medqa_tsv",
                    {
                        "test": "401dd9047f4294452d4cbe03e91a06df3c77223a770220401d1f9a56f043afb3",
                        "train": None,
                        "dev": "91c3444e3b448478786d9c997f273ec9e99ebddbf85f63aa5297148661444ec1",
                    },
                ),
                licence="unknown (upstream repository MIT)",
                citation="Jin et al. 2021, What disease does this patient have? Applied Sciences "
                "11:6421",
                test_size=1273,
                pool_chars_at_least=921_367,  # dev split's count (train not measured)
            ),
            DatasetSpec(
                name="pubmedqa",
                title="PubMedQA",
                task="qa",
                labels=("yes", "no", "maybe"),
                files={
                    "test": SourceFile(
                        _bench("[QA]PubMedQA", "test"),
                        "pubmedqa_tsv",
                        "c6b1dbd385e047bcb585784c74bc1638463117ac042aba947af1cc413d407247",
                    ),
                    "train": SourceFile(
                        "GPT/generative_tasks/data/PubMedQA/pubmedqa_train.json",
                        "pubmedqa_json",
                        "de0e74fde937a81645163f9468980bb0389e4427a7668eb31a3b4d89b921b19d",
                    ),
                    "dev": SourceFile(
                        "GPT/generative_tasks/data/PubMedQA/pubmedqa_dev.json",
                        "pubmedqa_json",
                        "7c7d066030d33a275b1575ad048220adc9f3e265ae0757217245ffa41b5324b4",
                    ),
                },
                licence="MIT",
                citation="Jin et al. 2019, PubMedQA: a dataset for biomedical research question "
                "answering, EMNLP",
                test_size=500,
                pool_chars_at_least=644_338,
            ),
        )
    ),
)


def get_dataset(name: str) -> DatasetSpec:
    """The spec of dataset ``name`` (an error naming the closest datasets when unknown)."""
    return DATASETS[name]
