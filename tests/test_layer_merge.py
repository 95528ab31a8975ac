"""Library tests of layers: the merged `/opt` folder and the checks on a function's `Layers`.

They need no Docker: a `LayerStore` works on a temporary folder.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import trio

from lambdasim.errors import InvalidParameterValueException, ValidationException
from lambdasim.layers import LayerStore, LayerVersion
from lambdasim.testing import make_zip

ARN = "arn:aws:lambda:us-east-1:000000000000:layer"


@pytest.fixture
def store(tmp_path: Path) -> LayerStore:
    return LayerStore(tmp_path / "layers")


async def publish(
    store: LayerStore, name: str, files: dict[str, str], modes: dict[str, int] | None = None
) -> LayerVersion:
    return await store.publish_layer_version(name, make_zip(files, modes))


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# Merge order -----------------------------------------------------------------------------


async def test_later_layer_wins_same_path(store: LayerStore) -> None:
    la = await publish(store, "la", {"python/shared.py": 'WHO = "A"\n', "conf/a.txt": "a"})
    lb = await publish(store, "lb", {"python/shared.py": 'WHO = "B"\n'})

    merged = await store.merged_opt([la, lb])

    assert (merged / "python/shared.py").read_text() == 'WHO = "B"\n'
    assert (merged / "conf/a.txt").read_text() == "a"


async def test_reversed_order_reverses_winner(store: LayerStore) -> None:
    la = await publish(store, "la", {"python/shared.py": 'WHO = "A"\n', "conf/a.txt": "a"})
    lb = await publish(store, "lb", {"python/shared.py": 'WHO = "B"\n'})

    merged = await store.merged_opt([lb, la])

    assert (merged / "python/shared.py").read_text() == 'WHO = "A"\n'
    assert (merged / "conf/a.txt").read_text() == "a"


async def test_merge_keeps_every_layers_files(store: LayerStore) -> None:
    versions = [
        await publish(store, f"l{index}", {f"lib/{index}.txt": str(index), "same.txt": str(index)})
        for index in range(5)
    ]

    merged = await store.merged_opt(versions)

    assert sorted(os.listdir(merged / "lib")) == [f"{index}.txt" for index in range(5)]
    assert (merged / "same.txt").read_text() == "4"


async def test_file_replaces_earlier_folder(store: LayerStore) -> None:
    first = await publish(store, "first", {"thing/inside.txt": "x", "keep.txt": "k"})
    second = await publish(store, "second", {"thing": "now a file"})

    merged = await store.merged_opt([first, second])

    assert (merged / "thing").is_file()
    assert (merged / "thing").read_text() == "now a file"
    assert (merged / "keep.txt").read_text() == "k"


async def test_folder_replaces_earlier_file(store: LayerStore) -> None:
    first = await publish(store, "first", {"thing": "a file"})
    second = await publish(store, "second", {"thing/inside.txt": "x"})

    merged = await store.merged_opt([first, second])

    assert (merged / "thing").is_dir()
    assert (merged / "thing/inside.txt").read_text() == "x"


async def test_merge_leaves_layer_folders_unchanged(store: LayerStore) -> None:
    la = await publish(store, "la", {"python/shared.py": "A"})
    lb = await publish(store, "lb", {"python/shared.py": "B"})

    await store.merged_opt([la, lb])

    assert (la.package.path / "python/shared.py").read_text() == "A"
    assert (lb.package.path / "python/shared.py").read_text() == "B"


# Modes and links -------------------------------------------------------------------------


async def test_merge_keeps_file_modes(store: LayerStore) -> None:
    tools = await publish(
        store,
        "tools",
        {"bin/tool": "#!/bin/sh\necho hi\n", "lib/data.txt": "data"},
        modes={"bin/tool": 0o755},
    )
    other = await publish(store, "other", {"lib/other.txt": "other"})

    merged = await store.merged_opt([tools, other])

    assert mode(merged / "bin/tool") == 0o755
    assert mode(merged / "lib/data.txt") == 0o644
    assert mode(merged / "lib/other.txt") == 0o644
    assert mode(merged) == 0o755
    assert mode(merged / "bin") == 0o755


async def test_merge_hard_links_layer_files(store: LayerStore) -> None:
    la = await publish(store, "la", {"a.txt": "a"})
    lb = await publish(store, "lb", {"b.txt": "b"})

    merged = await store.merged_opt([la, lb])

    assert os.path.samefile(merged / "a.txt", la.package.path / "a.txt")
    assert os.path.samefile(merged / "b.txt", lb.package.path / "b.txt")


async def test_merge_keeps_symlinks(store: LayerStore) -> None:
    linked = await publish(
        store,
        "linked",
        {"lib/libx.so.1": "binary", "lib/libx.so": "libx.so.1"},
        modes={"lib/libx.so": 0o120777},
    )
    other = await publish(store, "other", {"other.txt": "o"})

    merged = await store.merged_opt([linked, other])

    assert (merged / "lib/libx.so").is_symlink()
    assert os.readlink(merged / "lib/libx.so") == "libx.so.1"
    assert (merged / "lib/libx.so").read_text() == "binary"


# Building once ---------------------------------------------------------------------------


async def test_same_list_merged_once(store: LayerStore) -> None:
    la = await publish(store, "la", {"a.txt": "a"})
    lb = await publish(store, "lb", {"b.txt": "b"})

    first = await store.merged_opt([la, lb])
    marker = first / "a.txt"
    inode = os.stat(marker).st_ino
    second = await store.merged_opt([la, lb])

    assert second == first
    assert os.stat(second / "a.txt").st_ino == inode


async def test_order_gives_distinct_folder(store: LayerStore) -> None:
    la = await publish(store, "la", {"a.txt": "a"})
    lb = await publish(store, "lb", {"b.txt": "b"})

    assert await store.merged_opt([la, lb]) != await store.merged_opt([lb, la])


async def test_same_contents_share_folder(store: LayerStore) -> None:
    la1 = await publish(store, "la", {"a.txt": "a"})
    la2 = await publish(store, "la", {"a.txt": "a"})
    lb = await publish(store, "lb", {"b.txt": "b"})

    assert await store.merged_opt([la1, lb]) == await store.merged_opt([la2, lb])


async def test_concurrent_merges_build_once(store: LayerStore) -> None:
    la = await publish(store, "la", {"a.txt": "a"})
    lb = await publish(store, "lb", {"b.txt": "b"})
    results: list[Path] = []

    async def merge() -> None:
        results.append(await store.merged_opt([la, lb]))

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(merge)

    assert len(set(results)) == 1
    assert sorted(os.listdir(store.root / "merged")) == [results[0].name]


async def test_single_layer_uses_unpacked_folder(store: LayerStore) -> None:
    la = await publish(store, "la", {"a.txt": "a"})

    assert await store.merged_opt([la]) == la.package.path


async def test_deleted_version_still_merges(store: LayerStore) -> None:
    la = await publish(store, "la", {"a.txt": "a"})
    lb = await publish(store, "lb", {"b.txt": "b"})
    store.delete_layer_version("la", la.version)

    merged = await store.merged_opt([la, lb])

    assert (merged / "a.txt").read_text() == "a"


# Publishing ------------------------------------------------------------------------------


async def test_versions_never_renumber(store: LayerStore) -> None:
    first = await publish(store, "la", {"a.txt": "1"})
    second = await publish(store, "la", {"a.txt": "2"})
    store.delete_layer_version("la", 1)
    store.delete_layer_version("la", 2)
    third = await publish(store, "la", {"a.txt": "3"})

    assert [first.version, second.version, third.version] == [1, 2, 3]
    assert third.arn == f"{ARN}:la:3"


async def test_bad_zip_uses_no_version(store: LayerStore) -> None:
    with pytest.raises(InvalidParameterValueException, match="Could not unzip uploaded file"):
        await store.publish_layer_version("la", b"not a zip")
    published = await publish(store, "la", {"a.txt": "a"})

    assert published.version == 1


async def test_zip_slip_rejected(store: LayerStore) -> None:
    with pytest.raises(InvalidParameterValueException, match="outside the package"):
        await publish(store, "evil", {"../escape.txt": "x"})

    assert not (store.root / "escape.txt").exists()
    assert not (store.root / "unpacked" / "escape.txt").exists()


# A function's Layers ---------------------------------------------------------------------


async def test_resolve_keeps_order(store: LayerStore) -> None:
    la = await publish(store, "la", {"a.txt": "a"})
    lb = await publish(store, "lb", {"b.txt": "b"})

    assert await store.resolve_for_function([lb.arn, la.arn]) == [lb, la]
    assert await store.resolve_for_function([]) == []


async def test_resolve_rejects_six_layers(store: LayerStore) -> None:
    arns = [(await publish(store, f"l{index}", {"x": str(index)})).arn for index in range(6)]

    with pytest.raises(InvalidParameterValueException) as caught:
        await store.resolve_for_function(arns)

    assert caught.value.message == "Cannot reference more than 5 layers."


async def test_resolve_accepts_five_layers(store: LayerStore) -> None:
    arns = [(await publish(store, f"l{index}", {"x": str(index)})).arn for index in range(5)]

    assert len(await store.resolve_for_function(arns)) == 5


async def test_resolve_rejects_two_versions(store: LayerStore) -> None:
    await publish(store, "la", {"a": "1"})
    await publish(store, "la", {"a": "2"})

    with pytest.raises(InvalidParameterValueException) as caught:
        await store.resolve_for_function([f"{ARN}:la:1", f"{ARN}:la:2"])

    assert caught.value.message == (
        "Two different versions of the same layer are not allowed to be referenced in the same "
        f"function. {ARN}:la:1 and {ARN}:la:2 are versions of the same layer."
    )


async def test_resolve_rejects_repeated_version(store: LayerStore) -> None:
    await publish(store, "la", {"a": "1"})

    with pytest.raises(InvalidParameterValueException) as caught:
        await store.resolve_for_function([f"{ARN}:la:1", f"{ARN}:la:1"])

    assert caught.value.message.endswith(
        f"{ARN}:la:1 and {ARN}:la:1 are versions of the same layer."
    )


async def test_resolve_rejects_unknown_version(store: LayerStore) -> None:
    await publish(store, "la", {"a": "1"})

    with pytest.raises(InvalidParameterValueException) as caught:
        await store.resolve_for_function([f"{ARN}:la:9"])

    assert caught.value.message == f"Layer version {ARN}:la:9 does not exist."


async def test_resolve_rejects_deleted_version(store: LayerStore) -> None:
    await publish(store, "la", {"a": "1"})
    store.delete_layer_version("la", 1)

    with pytest.raises(InvalidParameterValueException) as caught:
        await store.resolve_for_function([f"{ARN}:la:1"])

    assert caught.value.message == f"Layer version {ARN}:la:1 does not exist."


async def test_resolve_rejects_arn_without_version(store: LayerStore) -> None:
    await publish(store, "la", {"a": "1"})

    with pytest.raises(ValidationException) as caught:
        await store.resolve_for_function([f"{ARN}:la"])

    assert caught.value.message == (
        f"1 validation error detected: Value '[{ARN}:la]' at 'layers' failed to satisfy "
        "constraint: Member must satisfy constraint: [Member must have length less than or "
        "equal to 140, Member must have length greater than or equal to 1, Member must satisfy "
        r"regular expression pattern: (arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:"
        r"[a-zA-Z0-9-_]+:[0-9]+)|(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+), "
        "Member must not be null]"
    )


async def test_resolve_rejects_other_region(store: LayerStore) -> None:
    with pytest.raises(InvalidParameterValueException) as caught:
        await store.resolve_for_function(["arn:aws:lambda:eu-west-1:000000000000:layer:la:1"])

    assert caught.value.message == (
        "Layers are not in the same region as the function. Layers are expected to be in "
        "region us-east-1."
    )


async def test_resolve_other_account_does_not_exist(store: LayerStore) -> None:
    await publish(store, "la", {"a": "1"})
    foreign = "arn:aws:lambda:us-east-1:123456789012:layer:la:1"

    with pytest.raises(InvalidParameterValueException) as caught:
        await store.resolve_for_function([foreign])

    assert caught.value.message == f"Layer version {foreign} does not exist."
