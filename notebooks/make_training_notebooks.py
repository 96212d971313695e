"""Write the training notebooks (one per recipe) into this folder: ``python notebooks/make_training_notebooks.py``.

Every notebook has the same shape, for Colab: clone and install (a cell tagged ``colab-setup``, as
``colab.ipynb``), a ``parameters`` cell (profile, data, steps), optional toy data, training with a
progress bar, the loss curve, the result loaded into the app's Studio and run once, and the command
that serves the app with it (tagged ``colab-serve``). CI (``tests/test_notebooks.py``) runs every
other cell with nbclient on the tiny profile, the parameters overridden to two steps on toy data.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

CLONE = """# Colab: get the studio's code and its requirements (skipped in CI)
REPO_URL = "https://huggingface.co/spaces/OWNER/SPACE"  # change to your copy
!git clone --depth 1 $REPO_URL studio
%cd studio
!pip install -q -r requirements.txt"""

TOY_AUDIO = """# Toy data: a few synthesised clips (a tone with a tremolo each), when no data folder is given
import numpy as np, soundfile as sf
from pathlib import Path

def make_toy_clips(folder, count=3, seconds=2.5, rate=44100):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    for i in range(count):
        f = 220.0 * (1.5 ** i)
        wave = 0.3 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        sf.write(folder / f"toy{i}.wav", wave.astype(np.float32), rate)
    return folder

if MAKE_TOY_DATA:
    make_toy_clips(DATA)
print(sorted(p.name for p in Path(DATA).iterdir()))"""

TOY_IMAGES = """# Toy data: three small pictures with captions in metadata.jsonl (a Hugging Face imagefolder)
import json
import numpy as np
from pathlib import Path
from PIL import Image

if MAKE_TOY_DATA:
    Path(DATA).mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (caption, colour) in enumerate([("a red square", (255, 0, 0)), ("a blue square", (0, 0, 255)),
                                           ("a green field", (0, 200, 0))]):
        pixels = np.zeros((80, 96, 3), np.uint8)
        pixels[:] = colour
        pixels[20:60, 30:70] = 255 - np.array(colour)
        Image.fromarray(pixels).save(Path(DATA) / f"{i}.png")
        rows.append({"file_name": f"{i}.png", "text": caption})
    (Path(DATA) / "metadata.jsonl").write_text("\\n".join(json.dumps(r) for r in rows) + "\\n")
print((Path(DATA) / "metadata.jsonl").read_text())"""

PLOT = """# The loss of every optimizer step (OUTPUT/loss.csv)
from training.common import read_losses

rows = read_losses(OUTPUT)
print(f"{len(rows)} steps, first loss {rows[0][1]:.4f}, last {rows[-1][1]:.4f}, {summary.seconds_per_step} s/step")
try:
    import matplotlib.pyplot as plt
except ImportError:  # the studio's own requirements do not include matplotlib (Colab has it)
    plt = None
if plt is not None:
    plt.plot([s for s, _ in rows], [l for _, l in rows])
    plt.xlabel("step"); plt.ylabel("loss"); plt.title(RECIPE)
    plt.show()"""

LISTEN = """# Listen (in Jupyter/Colab)
try:
    from IPython.display import Audio, display
    display(Audio(result.audio[0], rate=result.sample_rate))
except ImportError:
    print("IPython is not installed: result.audio holds", result.audio.shape, "samples")"""


def code(source: str, tags: tuple[str, ...] = ()) -> dict:
    return {"cell_type": "code", "metadata": {"tags": list(tags)} if tags else {}, "source": source,
            "outputs": [], "execution_count": None}


def markdown(source: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def notebook(recipe: str, title: str, intro: str, parameters: str, toy: str, train: str, use: str,
             serve: str) -> dict:
    cells = [
        markdown(f"# {title}\n{intro}\n\nPick a GPU runtime on Colab (Runtime → Change runtime type). The same "
                 f"training runs on several GPUs with `accelerate launch -m training.{recipe} ...` (see the manual's "
                 "`docs/TRAINING.md`)."),
        code(CLONE, ("colab-setup",)),
        code(f'RECIPE = "{recipe}"\n' + parameters, ("parameters",)),
        code(toy),
        markdown("## Train\nA progress bar shows the loss; checkpoints go to `OUTPUT/checkpoints/` "
                 "(add `--resume latest` to continue)."),
        code(train),
        code(PLOT),
        markdown("## Use it in the app"),
        code(use),
        code(LISTEN),
        code(serve, ("colab-serve",)),
    ]
    return {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
            "metadata": {"accelerator": "GPU", "kernelspec": {"name": "python3", "display_name": "Python 3"}}}


COMMON_PARAMETERS = """PROFILE = "hub"          # base models: "hub" (real), "tiny" (random, seconds on a CPU)
MAKE_TOY_DATA = False     # True: synthesise a few clips into DATA instead of using yours
MAX_STEPS = {steps}
EXTRA = []                # more flags, e.g. ["--mixed-precision", "fp16", "--resume", "latest"]
"""

NOTEBOOKS = {
    "train_style.ipynb": dict(
        recipe="style", title="Learn a MusicTI style",
        intro="A folder of audio in one style → riffusion spectrograms → MusicTI's time-varying textual inversion "
              "(AdamW 5e-3, batch 1, 512 px) → a style folder the *Style interpolation* tab lists.",
        parameters=COMMON_PARAMETERS.format(steps=3000)
        + 'DATA = "/content/data/accordion"     # your clips in one style\n'
          'STYLES = "/content/styles"            # STUDIO_MODEL_MUSIC_STYLES\n'
          'OUTPUT = f"{STYLES}/accordion"\n',
        toy=TOY_AUDIO,
        train="from training import style\n\n"
              'summary = style.train(["--data", DATA, "--output", OUTPUT, "--max-steps", str(MAX_STEPS),\n'
              '                       "--profile", PROFILE, *EXTRA])',
        use="import os\nfrom pathlib import Path\nfrom pipelines.schema.settings import StyleInterpolationSettings\n"
            "from pipelines.studio import Studio\n\n"
            'os.environ["STUDIO_MODEL_MUSIC_STYLES"] = STYLES\n'
            "studio = Studio(profile=PROFILE)\nname = Path(OUTPUT).name\n"
            "print(studio.style_names())\nassert name in studio.style_names()\n"
            "content = next(p for p in sorted(Path(DATA).iterdir()) if p.suffix == '.wav')\n"
            "result = studio.style_interpolation(str(content), [name], None, StyleInterpolationSettings(steps=3 if PROFILE == 'tiny' else 50))",
        serve='!STUDIO_MODEL_MUSIC_STYLES=$STYLES python app.py --share --host 0.0.0.0'),
    "train_lora.ipynb": dict(
        recipe="lora", title="Train the music-to-image LoRA (TechJam)",
        intro="Image/caption pairs (an imagefolder with `metadata.jsonl`, or a CSV) → a rank-4 LoRA on Stable "
              "Diffusion 1.5's UNet attention (lr 1e-4) → `pytorch_lora_weights.safetensors` for the *Music to "
              "image* tab.",
        parameters=COMMON_PARAMETERS.format(steps=15000)
        + 'DATA = "/content/data/frames"   # metadata.jsonl + images\nOUTPUT = "/content/loras/m2i"\n',
        toy=TOY_IMAGES,
        train="from training import lora\n\n"
              'summary = lora.train(["--data", DATA, "--output", OUTPUT, "--max-steps", str(MAX_STEPS),\n'
              '                      "--profile", PROFILE, *(["--resolution", "64"] if PROFILE == "tiny" else []), *EXTRA])',
        use="import os\nfrom pipelines.systems.music_to_image import MusicToImageSettings\nfrom pipelines.studio import Studio\n\n"
            'os.environ["STUDIO_MODEL_M2I_LORA"] = OUTPUT\nstudio = Studio(profile=PROFILE)\n'
            "size = 64 if PROFILE == 'tiny' else 512\n"
            'image_result = studio.music_to_image(None, "a red square", MusicToImageSettings(steps=3 if PROFILE == "tiny" else 50, width=size, height=size))\n'
            'print(image_result.parameters["lora"], image_result.image.size)\n'
            "# there is no sound here: a silent result keeps the next cell simple\n"
            "import numpy as np\nclass _Silence:\n    audio = np.zeros((1, 22050), np.float32); sample_rate = 22050\nresult = _Silence()",
        serve='!STUDIO_MODEL_M2I_LORA=$OUTPUT python app.py --share --host 0.0.0.0'),
    "train_amuse_vae.ipynb": dict(
        recipe="amuse_vae", title="Train the AMUSE playlist VAE",
        intro="Music → 256x256 audio-diffusion mel images → the playlist VAE (5 stride-2 stages, latent 32; MSE + "
              "weighted KL) → the `amuse_vae` folder the *Playlist to music* tab needs (its weights were never "
              "published).",
        parameters=COMMON_PARAMETERS.format(steps=10000)
        + 'DATA = "/content/data/music"\nOUTPUT = "/content/models/amuse_vae"\n',
        toy=TOY_AUDIO,
        train="from training import amuse_vae\n\n"
              'summary = amuse_vae.train(["--data", DATA, "--output", OUTPUT, "--max-steps", str(MAX_STEPS),\n'
              '                           "--profile", PROFILE, *(["--batch-size", "3"] if PROFILE == "tiny" else []), *EXTRA])',
        use="import os\nfrom pathlib import Path\nfrom pipelines.systems.playlist_to_music import PlaylistToMusicSettings\n"
            "from pipelines.studio import Studio\n\n"
            'os.environ["STUDIO_MODEL_AMUSE_VAE"] = OUTPUT  # the UNet: the Hub\'s (or tiny), until you train one\n'
            "studio = Studio(profile=PROFILE)\ntracks = [str(p) for p in sorted(Path(DATA).glob('*.wav'))][:3]\n"
            "result = studio.playlist_to_music(tracks, PlaylistToMusicSettings(steps=2 if PROFILE == 'tiny' else 50))",
        serve='!STUDIO_MODEL_AMUSE_VAE=$OUTPUT python app.py --share --host 0.0.0.0'),
    "train_amuse_unet.ipynb": dict(
        recipe="amuse_unet", title="Train the AMUSE VAE-conditioned UNet",
        intro="Music → mel images → a UNet conditioned on the playlist VAE's cat(mu, logvar) (min-max scaled; "
              "dropped to the empty-image encoding 10% of the time for classifier-free guidance; DDPM 1000 steps) "
              "→ the `amuse_unet` folder. Needs a trained VAE (`train_amuse_vae.ipynb`).",
        parameters=COMMON_PARAMETERS.format(steps=10000)
        + 'DATA = "/content/data/music"\nVAE = "/content/models/amuse_vae"\nOUTPUT = "/content/models/amuse_unet"\n',
        toy=TOY_AUDIO + "\n\n# a VAE to condition on: train a quick one when there is none yet\n"
            "from training import amuse_vae\nif not (Path(VAE) / 'config.json').is_file():\n"
            '    amuse_vae.train(["--data", DATA, "--output", VAE, "--max-steps", str(MAX_STEPS), "--profile", PROFILE])',
        train="from training import amuse_unet\n\n"
              'summary = amuse_unet.train(["--data", DATA, "--vae", VAE, "--output", OUTPUT, "--max-steps", str(MAX_STEPS),\n'
              '                            "--profile", PROFILE, *(["--batch-size", "1"] if PROFILE == "tiny" else []), *EXTRA])',
        use="import os\nfrom pathlib import Path\nfrom pipelines.systems.playlist_to_music import PlaylistToMusicSettings\n"
            "from pipelines.studio import Studio\n\n"
            'os.environ["STUDIO_MODEL_AMUSE_VAE"] = VAE\nos.environ["STUDIO_MODEL_AMUSE_UNET"] = OUTPUT\n'
            'studio = Studio(profile="hub")  # both models are local folders now: no tiny profile needed\n'
            "tracks = [str(p) for p in sorted(Path(DATA).glob('*.wav'))][:3]\n"
            "result = studio.playlist_to_music(tracks, PlaylistToMusicSettings(steps=2 if PROFILE == 'tiny' else 50))",
        serve='!STUDIO_MODEL_AMUSE_VAE=$VAE STUDIO_MODEL_AMUSE_UNET=$OUTPUT python app.py --share --host 0.0.0.0'),
    "train_riffusion_lora.ipynb": dict(
        recipe="riffusion_lora", title="Fine-tune Riffusion for a genre (DreamBooth-LoRA)",
        intro="Music in one genre → riffusion spectrograms → DreamBooth with a rank-4 LoRA on Riffusion's UNet "
              "(lr 1e-4, 500 steps) → a genre LoRA the *Sound to music* tab applies at its *Genre LoRA scale*.",
        parameters=COMMON_PARAMETERS.format(steps=500)
        + 'DATA = "/content/data/jazz"\nGENRE = "jazz"           # the instance prompt\nOUTPUT = "/content/loras/jazz"\n',
        toy=TOY_AUDIO,
        train="from training import riffusion_lora\n\n"
              'summary = riffusion_lora.train(["--data", DATA, "--output", OUTPUT, "--instance-prompt", GENRE,\n'
              '                                "--max-steps", str(MAX_STEPS), "--profile", PROFILE,\n'
              '                                *(["--resolution", "64"] if PROFILE == "tiny" else []), *EXTRA])',
        use="import os\nfrom pathlib import Path\nfrom pipelines.schema.settings import SoundToMusicSettings\n"
            "from pipelines.studio import Studio\n\n"
            'os.environ["STUDIO_MODEL_S2M_LORA"] = OUTPUT\nstudio = Studio(profile=PROFILE)\n'
            "sound = str(sorted(Path(DATA).glob('*.wav'))[0])\n"
            "result = studio.sound_to_music(sound, SoundToMusicSettings(prompt=GENRE, steps=3 if PROFILE == 'tiny' else 50, lora_scale=1.0))\n"
            'print(result.parameters["lora"])',
        serve='!STUDIO_MODEL_S2M_LORA=$OUTPUT python app.py --share --host 0.0.0.0'),
}


def main() -> None:
    for name, spec in NOTEBOOKS.items():
        (HERE / name).write_text(json.dumps(notebook(**spec), indent=1, ensure_ascii=False) + "\n")
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
