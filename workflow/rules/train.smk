# train: one model at one model key. The resume state (runs/<model>/<key>/ckpt) is no output: a re-run
# resumes it when it was made by the same run (fingerprint) and moves it to stale/ otherwise.


rule train:
    input:
        unpack(W.inputs("train-{model}-{key}")),
    output:
        weights=W.at("runs/{model}/{key}/model.safetensors"),
        summary=W.at("runs/{model}/{key}/summary.json"),
        history=W.at("runs/{model}/{key}/history.csv"),
        val=W.at("runs/{model}/{key}/val.csv"),
    log:
        W.at("logs/train/{model}/{key}.log"),
    params:
        plan=W.plan_file,
        launcher=W.launcher,
    threads: W.threads("train-{model}-{key}")
    resources:
        gpu=W.gpus("train-{model}-{key}"),
    conda:
        "../envs/ramit.yaml"
    shell:
        "{params.launcher}ramit train --plan {params.plan} --model {wildcards.model} --key {wildcards.key} "
        "> {log} 2>&1"
