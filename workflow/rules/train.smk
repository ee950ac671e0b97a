# train: one model on one task/scale; rerunning resumes from runs/<model>/<key>/ckpt.


rule train:
    output:
        weights="runs/{model}/{key}/model.safetensors",
        summary="runs/{model}/{key}/summary.json",
        history="runs/{model}/{key}/history.csv",
        val="runs/{model}/{key}/val.csv",
    input:
        deps("runs/{model}/{key}/model.safetensors"),
    params:
        cmd=cmd("runs/{model}/{key}/model.safetensors"),
    threads: 1
    resources:
        gpu=1,
    shell:
        "{params.cmd}"
