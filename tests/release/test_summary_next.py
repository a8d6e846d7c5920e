"""The summary's "Next" commands name the project's params when it is not the current folder."""

from components.release.summary import RunSummary, params_option, render_markdown


def test_next_commands_carry_the_params_of_a_pipeline_folder(tmp_path, monkeypatch):
    pipeline = tmp_path / "pipelines" / "digits"
    pipeline.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert params_option(tmp_path) == ""
    option = params_option(pipeline)
    assert option == "--params pipelines/digits/params.yaml "
    summary = RunSummary(dataset_path="data/digits", dataset_md5="x.dir", n_rows=1, split_sizes={}, validation="",
                         candidates={}, chosen=None, registered_model="digits-classifier",
                         params_option=option)  # fmt: skip
    markdown = render_markdown(summary)
    assert "`mlops --params pipelines/digits/params.yaml status --model digits-classifier`" in markdown
    assert "`mlops --params pipelines/digits/params.yaml serve --model digits-classifier`" in markdown


def test_a_project_outside_the_current_folder_is_named_by_its_absolute_path(tmp_path, monkeypatch):
    elsewhere, here = tmp_path / "elsewhere", tmp_path / "here"
    elsewhere.mkdir()
    here.mkdir()
    monkeypatch.chdir(here)
    assert params_option(elsewhere) == f"--params {elsewhere.resolve() / 'params.yaml'} "
