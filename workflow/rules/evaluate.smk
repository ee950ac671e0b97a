# evaluate + profile: PSNR/SSIM with the authors' protocol; params, MACs, latency.


rule evaluate:
    input:
        unpack(W.inputs("evaluate-trained-{model}-{key}")),
    output:
        scores=W.at("results/trained/{model}/{key}.json"),
        details=directory(W.at("results/trained/{model}/{key}")),
    log:
        W.at("logs/evaluate/trained/{model}/{key}.log"),
    params:
        plan=W.plan_file,
    resources:
        gpu=W.gpus("evaluate-trained-{model}-{key}"),
    conda:
        "../envs/ramit.yaml"
    shell:
        "ramit evaluate --plan {params.plan} --source trained --model {wildcards.model} --key {wildcards.key} "
        "> {log} 2>&1"


rule evaluate_released:
    input:
        unpack(W.inputs("evaluate-released-{release}")),
    output:
        scores=W.at("results/released/{model}/{release}.json"),
        details=directory(W.at("results/released/{model}/{release}")),
    log:
        W.at("logs/evaluate/released/{model}/{release}.log"),
    params:
        plan=W.plan_file,
    resources:
        gpu=W.gpus("evaluate-released-{release}"),
    conda:
        "../envs/ramit.yaml"
    shell:
        "ramit evaluate --plan {params.plan} --released {wildcards.release}.pth > {log} 2>&1"


rule profile:
    input:
        unpack(W.inputs("profile-{model}-{key}")),
    output:
        W.at("results/profile/{model}/{key}.json"),
    log:
        W.at("logs/profile/{model}/{key}.log"),
    params:
        plan=W.plan_file,
    threads: W.threads("profile-{model}-{key}")
    resources:
        gpu=W.gpus("profile-{model}-{key}"),
    conda:
        "../envs/ramit.yaml"
    shell:
        "ramit profile --plan {params.plan} --model {wildcards.model} --key {wildcards.key} > {log} 2>&1"
