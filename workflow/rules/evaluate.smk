# evaluate + profile: PSNR/SSIM with the authors' protocol; params, MACs, latency.


rule evaluate:
    input:
        unpack(stage_inputs("evaluate-{source}-{model}-{key}")),
    output:
        scores=ROOT + "results/{source}/{model}/{key}.json",
        details=directory(ROOT + "results/{source}/{model}/{key}"),
    log:
        ROOT + "logs/evaluate/{source}/{model}/{key}.log",
    benchmark:
        ROOT + "logs/evaluate/{source}/{model}/{key}.benchmark.tsv"
    params:
        plan=PLAN_FILE,
    resources:
        gpu=stage_gpus("evaluate-{source}-{model}-{key}"),
    shell:
        "ramit evaluate --plan {params.plan} --source {wildcards.source} --model {wildcards.model} "
        "--key {wildcards.key} > {log} 2>&1"


rule profile:
    input:
        unpack(stage_inputs("profile-{model}-{key}")),
    output:
        ROOT + "results/profile/{model}/{key}.json",
    log:
        ROOT + "logs/profile/{model}/{key}.log",
    benchmark:
        ROOT + "logs/profile/{model}/{key}.benchmark.tsv"
    params:
        plan=PLAN_FILE,
    threads: stage_threads("profile-{model}-{key}")
    resources:
        gpu=stage_gpus("profile-{model}-{key}"),
    shell:
        "ramit profile --plan {params.plan} --model {wildcards.model} --key {wildcards.key} > {log} 2>&1"
