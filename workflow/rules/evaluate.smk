# evaluate + profile: PSNR/SSIM with the authors' protocol; params, MACs, latency.


rule evaluate:
    input:
        unpack(stage_inputs("evaluate-trained-{model}-{key}")),
    output:
        scores=ROOT + "results/trained/{model}/{key}.json",
        details=directory(ROOT + "results/trained/{model}/{key}"),
    log:
        ROOT + "logs/evaluate/trained/{model}/{key}.log",
    benchmark:
        ROOT + "logs/evaluate/trained/{model}/{key}.benchmark.tsv"
    params:
        plan=PLAN_FILE,
    resources:
        gpu=stage_gpus("evaluate-trained-{model}-{key}"),
    shell:
        "ramit evaluate --plan {params.plan} --source trained --model {wildcards.model} --key {wildcards.key} "
        "> {log} 2>&1"


rule evaluate_released:
    input:
        unpack(stage_inputs("evaluate-released-{release}")),
    output:
        scores=ROOT + "results/released/{model}/{release}.json",
        details=directory(ROOT + "results/released/{model}/{release}"),
    log:
        ROOT + "logs/evaluate/released/{model}/{release}.log",
    benchmark:
        ROOT + "logs/evaluate/released/{model}/{release}.benchmark.tsv"
    params:
        plan=PLAN_FILE,
    resources:
        gpu=stage_gpus("evaluate-released-{release}"),
    shell:
        "ramit evaluate --plan {params.plan} --released {wildcards.release}.pth > {log} 2>&1"


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
