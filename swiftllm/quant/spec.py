"""Names of the quantized variants a layer can have: ``int8``, ``rtn-int4-g128``, ``awq-int4-g64``..."""
from dataclasses import dataclass

from swiftllm.quant.groupwise import DEFAULT_GROUP_SIZE, check_group_size

METHODS = ("int8", "rtn", "awq")


@dataclass(frozen=True, slots=True)
class VariantSpec:
    method: str                       # "int8" (per-channel), "rtn" or "awq" (INT4 group-wise)
    group_size: int = DEFAULT_GROUP_SIZE

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown quantization method {self.method!r}; expected one of {METHODS}")
        if self.method != "int8":
            check_group_size(self.group_size)

    @property
    def bits(self) -> int:
        return 8 if self.method == "int8" else 4

    @property
    def name(self) -> str:
        return "int8" if self.method == "int8" else f"{self.method}-int4-g{self.group_size}"

    @staticmethod
    def from_name(name: str) -> "VariantSpec":
        """Inverse of ``name``: "int8" or "<rtn|awq>-int4-g<group size>"."""
        if name == "int8":
            return VariantSpec("int8")
        method, _, group = name.partition("-int4-g")
        if not group.isdigit():
            raise ValueError(f"bad variant name {name!r}: expected 'int8' or '<rtn|awq>-int4-g<group size>'")
        return VariantSpec(method, int(group))
