# train: one model at one model key. The resume state (runs/<model>/<key>/ckpt) is no output: a re-run
# resumes it when it was made by the same run (fingerprint) and moves it to stale/ otherwise.


rule train:
    input:
        unpack(stage_inputs("train-{model}-{key}")),
    output:
        weights=ROOT + "runs/{model}/{key}/model.safetensors",
        summary=ROOT + "runs/{model}/{key}/summary.json",
        history=ROOT + "runs/{model}/{key}/history.csv",
        val=ROOT + "runs/{model}/{key}/val.csv",
    log:
        ROOT + "logs/train/{model}/{key}.log",
    benchmark:
        ROOT + "logs/train/{model}/{key}.benchmark.tsv"
    params:
        plan=PLAN_FILE,
        launcher=(f"torchrun --standalone --nproc_per_node {PLAN.train.processes} -m "
                  if PLAN.train.processes > 1 else ""),
    threads: stage_threads("train-{model}-{key}")
    resources:
        gpu=stage_gpus("train-{model}-{key}"),
    shell:
        "{params.launcher}ramit train --plan {params.plan} --model {wildcards.model} --key {wildcards.key} "
        "> {log} 2>&1"
