"""pip installation of SmolRGPT for ROS 2 (training, offline use, tests).

colcon builds this repository through CMakeLists.txt (package.xml says ament_cmake); this
file serves `pip install -e .`. The ROS interface modules (smolrgpt_ros.msg/.srv) come from the
CMake build (`make setup` runs both).
"""

from pathlib import Path

from setuptools import find_packages, setup

VERSION = '0.3.0'  # keep equal to package.xml and smolrgpt_core.__version__

setup(
    name='smolrgpt',
    version=VERSION,
    description='SmolRGPT for ROS 2: region-aware spatial question answering on RGB-D frames',
    long_description=Path(__file__).with_name('README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=find_packages(
        include=['smolrgpt_cli*', 'smolrgpt_core*', 'smolrgpt_ros*', 'training*']
    ),
    include_package_data=True,
    install_requires=[
        'numpy>=1.26,<3',
        'torch>=2.4',
        'safetensors>=0.4',
        'tokenizers>=0.19',
        'pillow>=10',
        'tqdm>=4.66',
        'pyyaml>=6',
        'rosbags>=0.10',
        'opencv-python-headless>=4.10,<6',  # 4.10: the first built for numpy 2
    ],
    extras_require={
        'masks': ['pycocotools>=2.0.7'],
        'onnx': ['onnx>=1.16', 'onnxruntime>=1.18', 'onnxscript>=0.2'],
        'llm': ['ollama>=0.4'],
        'tensorrt': ['tensorrt>=10.12'],
        'train': ['tensorboard>=2.16', 'matplotlib>=3.8', 'scikit-learn>=1.4', 'pyarrow>=15'],
        'dev': ['pytest>=8', 'ruff>=0.6'],
    },
    entry_points={
        'console_scripts': [
            'smolrgpt = smolrgpt_cli.main:main',
            'spatial_query_node = smolrgpt_ros.spatial_query_node:main',
        ],
    },
)
