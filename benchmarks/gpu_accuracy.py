"""Accuracy report of the Triton backend against a float64 reference: relative RMS error of every output
and gradient, per case (GPU: real shapes; CPU under TRITON_INTERPRET=1: small shapes)."""
import os, sys, time, torch
import torch.nn.functional as F
from linseq.ops import lightning_attn, tnl_log_decay
from linseq.ops.lightning.triton.function import triton_lightning_attn
def rel(a,b): return ((a.double()-b.double()).norm()/b.double().norm().clamp_min(1e-30)).item()
dev = 'cuda' if torch.cuda.is_available() else 'cpu'
big = dev == 'cuda'
cases = [(2,4096+37,4,128,128,'bf16','head',None),(2,4096+37,4,128,128,'bf16','token',None),(2,4096+37,4,128,128,'bf16','none',None),
         (2,4096+37,4,128,128,'fp16','token',None),(2,4096+37,4,256,256,'bf16','head',None),
         (1,32768+5,4,128,128,'bf16','token',8),(2,4096+37,4,100,72,'fp32','token',None)] if big else \
        [(2,150,2,32,24,'fp32','token',None),(2,130,2,40,70,'fp16','token',2),(1,200,2,16,16,'fp32','head',3)]  # fp32 last: slowest on the GPU
# the backward on float32 operands when the decay needs a gradient (function.DECAY_GRAD_PRECISION), bf16 cases
exact_cases = [(2,4096+37,4,128,128,'bf16','head',None,'tf32x3'),(2,4096+37,4,128,128,'bf16','token',None,'tf32x3'),
               (1,32768+5,4,128,128,'bf16','head',8,'tf32'),(1,32768+5,4,128,128,'bf16','head',8,'tf32x3')] if big else \
              [(2,130,2,40,70,'fp16','token',2,'tf32x3')]  # the fp16 CPU case above, with the option
import linseq.ops.lightning.triton.function as fn_mod
print('case | o | final | dq | dk | dv | dlog_decay | dh0 | s')
for (B,T,H,K,V,dt,dec,ns,*exact) in [c + (None,) for c in cases] + exact_cases:
    fn_mod.DECAY_GRAD_PRECISION = exact[0]
    dtype={'bf16':torch.bfloat16,'fp16':torch.float16,'fp32':torch.float32}[dt]
    t0=time.time()
    q,k,v=(torch.randn(B,T,H,d,device=dev,dtype=dtype) for d in (K,K,V))
    g={'none':None,'head':tnl_log_decay(H,1,12).to(dev),'token':F.logsigmoid(torch.randn(B,T,H,device=dev))/8}[dec]
    h0=torch.randn(B,H,K,V,device=dev)
    ins=[x for x in (q,k,v,g,h0) if x is not None]
    for x in ins: x.requires_grad_(True)
    do=torch.randn(B,T,H,V,device=dev,dtype=dtype); dht=torch.randn(B,H,K,V,device=dev)
    try:
        o,s=triton_lightning_attn(q,k,v,g,1.0,h0,True,None,ns)
        ((o.float()*do.float()).sum()+(s*dht).sum()).backward()
    except Exception as e:
        print(B,T,H,K,V,dt,dec,ns,'ERROR',type(e).__name__,str(e)[:300]); continue
    ins64=[x.detach().double().requires_grad_(True) for x in ins]
    g64=ins64[3] if g is not None else None
    o2,s2=lightning_attn(ins64[0],ins64[1],ins64[2],g64,scale=1.0,initial_state=ins64[-1],output_final_state=True,backend='chunk')
    ((o2*do.double()).sum()+(s2*dht.double()).sum()).backward()
    gr=[f'{rel(a.grad,b.grad):.1e}' for a,b in zip(ins,ins64)]
    if g is None: gr.insert(3,'-')
    print(f'{B}x{T}x{H} K{K} V{V} {dt} {dec} ns={ns}{" grad operands " + exact[0] if exact[0] else ""} | {rel(o,o2):.1e} | {rel(s,s2):.1e} | '+' | '.join(gr)+f' | {time.time()-t0:.1f}', flush=True)
