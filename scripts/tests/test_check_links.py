"""check_links.py on small trees of Markdown files made for each test."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import check_links  # noqa: E402


def write(root, path, text):
    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(text)
    return str(full)


def test_github_anchors_drop_punctuation_and_number_repeats():
    assert check_links.slug("Soak test: kill and restart") == "soak-test-kill-and-restart"
    assert check_links.slug("`shm_table` and friends") == "shm_table-and-friends"
    assert check_links.anchors_in("# A\n## A\n### B-c\n") == {"a", "a-1", "b-c"}


def test_links_in_code_are_not_links():
    text = "[real](a.md)\n`[inline](b.md)`\n```\n[fenced](c.md)\n```\n![image](d.png)\n"
    assert check_links.links_in(text) == [(1, "a.md")]


def test_every_kind_of_broken_link_is_named_with_its_line(tmp_path):
    write(tmp_path, "docs/page.md", "# Page\n## Part two\n")
    readme = write(tmp_path, "README.md",
                   "[ok](docs/page.md)\n[ok anchor](docs/page.md#part-two)\n[web](https://example.com/x.md)\n"
                   "[missing](docs/nope.md)\n[bad anchor](docs/page.md#part-three)\n[self](#intro)\n"
                   "[folder](docs/)\n[from root](/docs/page.md)\n")
    problems = check_links.broken_links(readme, open(readme).read(), str(tmp_path))
    assert problems == ["README.md:4: docs/nope.md: no such file",
                        "README.md:5: docs/page.md#part-three: no heading with anchor #part-three",
                        "README.md:6: #intro: no heading with anchor #intro"]


def test_links_resolve_from_the_linking_files_folder(tmp_path):
    write(tmp_path, "README.md", "# Top\n")
    page = write(tmp_path, "docs/page.md", "[up](../README.md#top)\n[wrong](README.md)\n")
    assert check_links.broken_links(page, open(page).read(), str(tmp_path)) == [
        "docs/page.md:2: README.md: no such file"]


def test_the_command_fails_on_a_broken_link_and_passes_when_mended(tmp_path, capsys):
    write(tmp_path, "README.md", "[gone](docs/gone.md)\n")
    assert check_links.main([str(tmp_path)]) == 1
    assert "README.md:1: docs/gone.md: no such file" in capsys.readouterr().out
    write(tmp_path, "docs/gone.md", "# Back\n")
    assert check_links.main([str(tmp_path)]) == 0
