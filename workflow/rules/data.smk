# fetch -> degrade: verified datasets, then the authors' degradations.
# Downloads (data/raw) and your manual datasets (data/manual) are never outputs: re-runs never delete them.


rule fetch:
    input:
        unpack(stage_inputs("fetch-{dataset}")),
    output:
        ROOT + "data/verified/{dataset}.json",
    log:
        ROOT + "logs/fetch/{dataset}.log",
    params:
        plan=PLAN_FILE,
    resources:
        downloads=1,
    shell:
        "ramit fetch --plan {params.plan} {wildcards.dataset} > {log} 2>&1"


rule degrade:
    input:
        unpack(stage_inputs("degrade-{setting}-{dataset}")),
    output:
        directory(ROOT + "data/degraded/{setting}/{dataset}"),
    log:
        ROOT + "logs/degrade/{setting}/{dataset}.log",
    params:
        plan=PLAN_FILE,
    shell:
        "ramit degrade --plan {params.plan} {wildcards.setting} {wildcards.dataset} > {log} 2>&1"


rule degrade_train:
    input:
        unpack(stage_inputs("degrade-train-{key}-{dataset}")),
    output:
        directory(ROOT + "data/degraded/train/{key}/{dataset}"),
    log:
        ROOT + "logs/degrade/train/{key}/{dataset}.log",
    benchmark:
        ROOT + "logs/degrade/train/{key}/{dataset}.benchmark.tsv"
    params:
        plan=PLAN_FILE,
    shell:
        "ramit degrade --plan {params.plan} --train {wildcards.key} {wildcards.dataset} > {log} 2>&1"


rule fetch_weights:
    input:
        unpack(stage_inputs("fetch-weights-{file}")),
    output:
        ROOT + "weights/released/{file}.pth",
    log:
        ROOT + "logs/fetch_weights/{file}.log",
    params:
        plan=PLAN_FILE,
    resources:
        downloads=1,
    shell:
        "ramit fetch-weights --plan {params.plan} {wildcards.file}.pth > {log} 2>&1"
