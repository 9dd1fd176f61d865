from .ckpt_convert import detect_vvt_arch, vvt_convert

__all__ = ['detect_vvt_arch', 'vvt_convert']
